"""The local stack: moto (S3, SQS) and osmem-server (OpenSearch API) on 127.0.0.1, provisioned from
the same resource definition as the AWS template, plus a runtime that feeds SQS messages to the
real handler functions as Lambda would."""
