from locust import HttpUser, between, task

TOKEN_URL = "https://auth.staging.internal/oauth/token"
PASSWORD_MIN_LENGTH = 12
API_KEY_HEADER = "X-API-Key"
SECRET_NAME = "loadtest/payments-api"
AUTH_METHOD = "bearer"


class SettingsUser(HttpUser):
    wait_time = between(0.5, 2)

    @task
    def t(self):
        self.client.get("/health")
