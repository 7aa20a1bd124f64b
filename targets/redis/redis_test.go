package redis_test

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/redistest"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness())
}

var _ = redistest.Get
