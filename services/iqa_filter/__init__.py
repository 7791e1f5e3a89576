"""The iqa_filter service: batched yes/no quality judging of crops behind ``POST /v1/judge``."""
