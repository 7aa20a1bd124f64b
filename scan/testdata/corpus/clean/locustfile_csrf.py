import re

from locust import HttpUser, task

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class FormUser(HttpUser):
    @task
    def submit(self):
        page = self.client.get("/form").text
        csrf_token = CSRF_RE.search(page).group(1)
        self.client.post("/form", data={"csrf_token": csrf_token, "comment": "load"})
