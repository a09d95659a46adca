"""``python -m ember.hub`` runs the ``ember`` command."""

from ember.hub.cli import main

raise SystemExit(main())
