package redis_test

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/redistest"
)

// TestMain runs the package's tests beside a private Redis server.
func TestMain(m *testing.M) { redistest.Main(m) }
