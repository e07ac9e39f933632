"""The lambda runtime: one AWS Lambda function per task version, fed by its SQS queue (docs/lambda.md)."""
