"""The application: the ``hatthasilpa`` command line, the demo factory, the doctor and settings.

The top layer of the house (``docs/architecture.md``): it assembles the lifecycle core,
the monitor's checks and repairs and the Dagster definitions, and nothing below imports it.
"""
