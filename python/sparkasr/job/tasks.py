"""How a run's input rows are dealt out to Spark tasks.

Rows built on the driver (listed local files, local CSV/TSV manifests: :class:`DriverRows`) are
dealt by their bytes of audio, the largest files first (:func:`deal`): the tasks launched first
get the larger shares and the last ones small shares (:func:`weights`), so that the slots end at
about the same time even when file lengths vary, and the last task does not run alone on a
cluster of idle cores. On a classic session the frame is made with one partition per
task (:func:`frame_in_tasks`: the rows travel to the JVM as one element per task, no shuffle, no
Python worker); a Spark Connect client, which only sends plans, sends the rows with their task and
Spark's hash partitioning puts each in its place (:func:`task_keys`). Rows that Spark reads itself
(remote URIs, other manifests) are spread by Spark's round robin (:func:`spread_rows`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

TASK = "_sparkasr_task"  # a driver-built row's task, for Spark's hash partitioning (Connect)


@dataclass(frozen=True)
class DriverRows:
    """Input rows built on the driver: every column a string, ``input_id`` among them, and each
    row's file size in bytes (0 where unknown: the row is an error record, quick to write)."""

    columns: Tuple[str, ...]
    rows: List[tuple] = field(repr=False)
    sizes: List[int] = field(repr=False)

    @staticmethod
    def union(parts: Sequence[DriverRows]) -> DriverRows:
        """The rows of ``parts`` under the union of their columns (by name, in order of first
        appearance; a column a part lacks is null there), as Spark's ``unionByName`` would."""
        columns: List[str] = []
        for p in parts:
            columns += [c for c in p.columns if c not in columns]
        rows: List[tuple] = []
        sizes: List[int] = []
        for p in parts:
            at = [p.columns.index(c) if c in p.columns else -1 for c in columns]
            rows += [tuple(r[i] if i >= 0 else None for i in at) for r in p.rows]
            sizes += p.sizes
        return DriverRows(tuple(columns), rows, sizes)

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> List[str]:
        at = self.columns.index("input_id")
        return [r[at] for r in self.rows]

    def without(self, done: Iterable[str]) -> DriverRows:
        """The rows whose ``input_id`` is not in ``done``."""
        done = set(done)
        keep = [i for i, x in enumerate(self.ids()) if x not in done]
        return DriverRows(self.columns, [self.rows[i] for i in keep], [self.sizes[i] for i in keep])

    def schema(self):
        from pyspark.sql.types import StringType, StructField, StructType

        return StructType([StructField(c, StringType(), True) for c in self.columns])

    def frame(self, spark):
        """The rows as a DataFrame, partitioned as Spark likes (for joins, not for the run's tasks)."""
        return spark.createDataFrame(self.rows, self.schema())


#: With more tasks than task slots, the first task gets this many times the last one's bytes.
FIRST_TO_LAST = 3.0


def weights(tasks: int, slots: int) -> List[float]:
    """Each task's share of the bytes, in launch order: equal when the tasks run in one wave
    (``tasks <= slots``), else falling linearly to 1/:data:`FIRST_TO_LAST` of the first's. Spark
    launches a stage's tasks in order, so the short ones come last: a slot that ends early takes
    more of them, and the last to end leaves the others idle for less than a short task's time."""
    if tasks <= max(slots, 1) or tasks == 1:
        return [1.0] * tasks
    step = (FIRST_TO_LAST - 1.0) / (tasks - 1)
    return [FIRST_TO_LAST - step * j for j in range(tasks)]


def deal(sizes: Sequence[int], tasks: int, slots: int = 0) -> List[List[int]]:
    """Row indices for each of ``tasks`` tasks run on ``slots`` task slots (0: as many as tasks):
    the largest row first, each to the task that is furthest below its share (:func:`weights`;
    then the task with fewer rows, then the lower number), so that the tasks carry their share of
    the audio. Rows of one size go round in turn. Each task's rows keep their order."""
    tasks = max(1, min(tasks, len(sizes))) if sizes else max(1, tasks)
    share = weights(tasks, slots or tasks)
    heap = [(0.0, 0, t) for t in range(tasks)]  # (bytes / share, rows, task)
    load = [0] * tasks
    out: List[List[int]] = [[] for _ in range(tasks)]
    for i in sorted(range(len(sizes)), key=lambda i: -max(sizes[i], 0)):
        _, n, t = heapq.heappop(heap)
        out[t].append(i)
        load[t] += max(sizes[i], 0)
        heapq.heappush(heap, (load[t] / share[t], n + 1, t))
    return [sorted(t) for t in out]


def frame_in_tasks(spark, rows: DriverRows, tasks: int, slots: int = 0):
    """``rows`` as a DataFrame of ``tasks`` partitions dealt by :func:`deal`: partition ``j`` holds
    task ``j``'s rows, in their order."""
    from ..spark.session import is_connect

    dealt = [t for t in deal(rows.sizes, tasks, slots) if t]
    if is_connect(spark):
        return _frame_by_hash(spark, rows, dealt)
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StructField, StructType

    # One element per task, each the list of its rows; Spark's parallelize gives element j to
    # partition j, and inline() makes them rows in the same stage. This is createDataFrame's own
    # road to the JVM (rows unpickled there), with the slices chosen here.
    holder = StructType([StructField("rows", ArrayType(rows.schema(), False), False)])
    data = [holder.toInternal(([rows.rows[i] for i in t],)) for t in dealt]
    sc = spark.sparkContext
    rdd = sc.parallelize(data, len(data))
    jrdd = sc._jvm.SerDeUtil.toJavaArray(rdd._to_java_object_rdd())
    jdf = spark._jsparkSession.applySchemaToPythonRDD(jrdd.rdd(), holder.json())
    return DataFrame(jdf, spark).select(F.inline("rows"))


def _frame_by_hash(spark, rows: DriverRows, dealt: List[List[int]]):
    from pyspark.sql.types import IntegerType, StructField, StructType

    keys = task_keys(len(dealt))
    data = [(*rows.rows[i], keys[j]) for j, t in enumerate(dealt) for i in t]
    schema = StructType(rows.schema().fields + [StructField(TASK, IntegerType(), False)])
    return spark.createDataFrame(data, schema).repartition(len(dealt), TASK).drop(TASK)


def spread_rows(df, partitions: int):
    """``df`` (rows Spark reads) in ``partitions`` tasks, by Spark's round robin (which starts each
    input partition at its own offset: some tasks may get a row more)."""
    return df.repartition(partitions)


def spark_int_hash(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an ``int`` column (Murmur3 x86_32, ``Murmur3_x86_32.hashInt``), which
    its hash partitioning takes modulo the partition count."""

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    k1 = rotl((value & 0xFFFFFFFF) * 0xCC9E2D51 & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
    h1 = (rotl(seed ^ k1, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & 0xFFFFFFFF
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & 0xFFFFFFFF
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >= 1 << 31 else h1


def task_keys(partitions: int) -> List[int]:
    """For each partition ``j``, an int that Spark's hash partitioning sends to ``j``."""
    keys: Dict[int, int] = {}
    k = 0
    while len(keys) < partitions:
        keys.setdefault(spark_int_hash(k) % partitions, k)
        k += 1
    return [keys[j] for j in range(partitions)]
