// Placeholder of the issue-6 contract commit; its owner fills it in.
