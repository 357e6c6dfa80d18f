"""Amazon Web Services provider (boto3)."""
