import unittest

from shop.auth import check_password


class PasswordTests(unittest.TestCase):
    def test_rejects_wrong(self):
        self.assertFalse(check_password("user", "password"))

    def test_token_header(self):
        headers = {"Authorization": "Bearer test"}
        self.assertEqual(headers["Authorization"].split()[0], "Bearer")
