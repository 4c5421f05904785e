"""The challenger service: sample commitments, re-execute, dispute, settle."""
