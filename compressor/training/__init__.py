"""Training: config, the loop, distillation, run state, export to a release checkpoint, data and plots.

    config.py   TrainConfig, the learning-rate schedule, `--set` overrides, check_config
    run.py      train(): a run from start to end (new or resumed, steps or a time budget)
    trainer.py  Trainer: the loop (steps, logging, validation, saving)
    distill.py  the teacher and ring buffer of `distill_refine`
    state.py    the run's state file, progress (segments, provenance) and the model card's facts
    export.py   a run's state -> a release checkpoint
    data.py     the crop pool and the batches drawn from it
    plots.py    curves.png and reconstructions.png
"""
