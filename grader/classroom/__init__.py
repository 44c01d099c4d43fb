"""A whole class: `grader batch` (inputs, cache keys, jobs, the record store, the gradebook for Canvas), the
class report and the similarity check."""
