"""`roi-worker run`, in flow order: poll -> prepare -> store (write, dead letters) -> commit."""
