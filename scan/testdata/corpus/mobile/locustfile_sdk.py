from locust import HttpUser, task


class SdkUser(HttpUser):
    @task
    def ping(self):
        self.client.get("/ping", headers={"Api-Key": "sdk-8Lz2Qx7Wm4Kp9Vn3Tr6"})  ⟦cred⟧
