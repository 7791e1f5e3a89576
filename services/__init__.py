"""The HTTP microservices (DESIGN §2, §6): one package per service, each a thin FastAPI app over ``giqa``."""
