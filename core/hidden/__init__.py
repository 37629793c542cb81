"""The base model's pooled hidden states (RDS+ features): their cached, resumable computation and its job."""
