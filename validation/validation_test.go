package validation_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/validation"
)

func TestError(t *testing.T) {
	t.Parallel()
	e := &validation.Error{Subject: "file store"}
	require.NoError(t, e.Err())
	e.Add("dir", "required")
	e.Add("", "the block is %s", "wrong")
	err := e.Err()
	require.EqualError(t, err, "file store: dir: required; the block is wrong")
	var ve *validation.Error
	require.True(t, errors.As(err, &ve))
	require.Equal(t, []validation.Problem{{Field: "dir", Msg: "required"}, {Msg: "the block is wrong"}}, ve.Problems)
}
