"""Moving an agent's cache between instances: export, import, and bulk take uploads.

- ``archive.py``  the archive format (a tar: ``audio/<sha256>.wav`` + ``manifest.json``)
- ``export.py``   an agent's entries and audio as a stream of archive bytes
- ``importer.py`` an archive verified whole, then stored entry by entry (idempotent)
- ``takes.py``    a folder or archive of WAVs + a mapping file → entries' audio
"""
