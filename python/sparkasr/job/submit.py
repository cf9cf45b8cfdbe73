"""spark-submit entry point for the transcription job.

    spark-submit --master spark://host:7077 --properties-file conf/standalone.properties \\
        --py-files dist/sparkasr.zip python/sparkasr/job/submit.py INPUT... --output DIR [options]

Takes the same arguments as ``sparkasr transcribe`` (including ``--config job.yaml``); the master
and Spark settings come from spark-submit. Executors need sparkasr's dependencies installed (or a
packed environment via ``--archives``), and either sparkasr installed or shipped with ``--py-files``.
"""

import os
import sys

if __name__ == "__main__":
    # Run as a script, this file's directory is sys.path[0]: the package's modules would shadow
    # top-level modules of the same name. sparkasr is imported as a package instead.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    os.environ["SPARK_SUBMIT"] = "1"  # do not force a master: spark-submit decides
    from sparkasr.cli import main

    sys.exit(main(["transcribe", *sys.argv[1:]]))
