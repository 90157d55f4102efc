"""``python -m pgingest`` runs the command line."""

if __name__ == "__main__":
    # (Imported here: a ``--workers`` process, which re-imports this module under another
    # name, loads files and needs none of the command line's modules.)
    from pgingest.cli.app import run

    run()
