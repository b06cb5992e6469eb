"""Scoring photo collections: a resumable job that writes one Parquet table.

    INPUT... -> inputs.expand_inputs (files, folders, globs, list files; deduplicated)
             -> minus what the table already holds (shards.ShardStore)
             -> an engine (engine_local: threads; engine_ray: Ray Data actor pool), batches of paths
                through batching.score_paths (the runtime's public Scorer.score)
             -> shards.ShardWriter (one Parquet shard at a time) -> finalise (compact into --out)
             -> summary.Summary

Everything here uses only the public runtime API (:func:`edge_iqa.runtime.load`,
:meth:`~edge_iqa.runtime.Scorer.score`), so a faster Scorer makes every engine faster.
"""

from edge_iqa.collection.job import CollectionJob, EngineOptions, JobResult, run_job
from edge_iqa.collection.summary import Summary

__all__ = ["CollectionJob", "EngineOptions", "JobResult", "Summary", "run_job"]
