import os

from locust import HttpUser, constant, task

STRIPE_KEY = os.getenv("STRIPE_SECRET_KEY", "sk_test_51HxQpL2eZvKYlo2C8r6JmT0aB3c")  ⟦cred⟧


class Checkout(HttpUser):
    wait_time = constant(0.5)

    @task
    def pay(self):
        self.client.post("/charge", headers={"Authorization": "Bearer " + STRIPE_KEY}, json={"amount": 1200})
