"""Amazon Web Services adapters: SQS (queue), S3 (object store) and the boto3 client factory."""
