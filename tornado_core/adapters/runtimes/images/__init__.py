"""Worker images: the offline base image, the wheelhouse, the build, and the image contract."""
