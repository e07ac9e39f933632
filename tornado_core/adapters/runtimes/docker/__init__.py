"""The docker runtime: worker containers on a private ``dockerd`` the project starts."""
