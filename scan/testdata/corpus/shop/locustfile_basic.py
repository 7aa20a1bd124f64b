from locust import HttpUser, task

ADMIN_USER = "ops-bot"
ADMIN_PASS = "Vh3rT8qZ1nWx"  ⟦cred⟧


class AdminUser(HttpUser):
    @task
    def report(self):
        self.client.get("/admin/report", auth=(ADMIN_USER, ADMIN_PASS))
