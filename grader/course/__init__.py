"""The course as data: the manifest (`assignment.toml`), the rules it states, and the intake of a submission
(staging the files the manifest names, from a folder or an archive). Imports nothing else of the grader."""
