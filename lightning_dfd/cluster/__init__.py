"""Running on clusters: SLURM submission (:mod:`.slurm`) and hyperparameter sweeps (:mod:`.sweep`)."""
