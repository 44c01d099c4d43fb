"""What leaves the course: `release` (the student kit and the autograder bundle) and `submit` (the zip a
student uploads)."""
