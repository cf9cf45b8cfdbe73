"""The batch job behind ``sparkasr transcribe``: the run (:mod:`.run`), its job file (:mod:`.config`),
its inputs (:mod:`.listing`) and how they are dealt to tasks (:mod:`.tasks`), its output directory
(:mod:`.output`), live progress (:mod:`.progress`), subtitles (:mod:`.subtitles`) and the
spark-submit entry (:mod:`.submit`)."""
