package mysql_test

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/mariadbtest"
)

// TestMain runs the package's tests beside a private MariaDB server.
func TestMain(m *testing.M) { mariadbtest.Main(m) }
