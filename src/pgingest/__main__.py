"""``python -m pgingest`` runs the command line."""

from pgingest.cli.app import main

if __name__ == "__main__":
    main()
