"""The Spark engine: every module that touches Spark. It knows nothing of the job table or the shells."""
