from locust import HttpUser, task

# A public demo key, documented as such by the vendor.
DEMO_KEY = "demo-3Kx9Lm2Qz7Wp4Vn8"  # swarmkey:ignore


class DemoUser(HttpUser):
    @task
    def t(self):
        self.client.get("/", headers={"X-API-Key": DEMO_KEY})
