"""Both sides of every wire: the completion service (ASGI, Lambda), its client,
the model store (S3/HTTPS) and the deploy artifacts in cloud/deploy/."""
