"""The judge: the check DSL (`checks`), the comparisons and feedback (`judging`), the static scan of submitted
source, the runner that grades a submission, and the results it returns. Never imports reports or the CLI."""
