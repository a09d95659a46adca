"""ember's distributed strategies (``ddp``, ``fsdp``), their process launcher and the
cluster environments they detect. Written against :mod:`ember.trainer.plugins` only,
like any third-party strategy."""
