from locust import HttpUser, task

DEVICE_ID = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class MobileUser(HttpUser):
    app_secret = "ms_Hq2Zx8Lm4Kp9Vn3Wt7Rc1Yb6"  ⟦cred⟧

    @task
    def feed(self):
        self.client.get(f"/feed?device={DEVICE_ID}", headers={"X-App-Secret": self.app_secret})
