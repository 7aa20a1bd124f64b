from locust import TaskSet, task

HEADERS = {
    "Accept": "application/json",
    "X-Auth-Token": "a81bc81b-dead-4e5d-abff-90865d1e13b1.8fQz",  ⟦cred⟧
}


class PaymentTasks(TaskSet):
    @task
    def list_payments(self):
        self.client.get("/payments", headers=HEADERS)
