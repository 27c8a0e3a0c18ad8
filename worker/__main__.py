from worker.cli import main

# Guarded: extractor processes import the main module again, and must not run the CLI there.
if __name__ == "__main__":
    raise SystemExit(main())
