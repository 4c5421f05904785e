"""The inference node service: serve, commit, finalize, and defend disputes with proofs."""
