import redis
from locust import User, task


class RedisUser(User):
    def on_start(self):
        self.r = redis.Redis.from_url("redis://:Rd5#qW8zXm2p@cache.staging.internal:6379/0")  ⟦cred⟧

    @task
    def get(self):
        self.r.get("k")
