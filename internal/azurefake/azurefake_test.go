package azurefake

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"
)

func requireStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	require.True(t, errors.As(err, &re), "want a response error, got %v", err)
	require.Equal(t, status, re.StatusCode)
	require.Equal(t, code, re.ErrorCode)
}

// TestDocumentedSemantics checks the model against the behaviour the
// store relies on, as the package documentation quotes it.
func TestDocumentedSemantics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := New().Client(t)

	_, err := c.GetSecret(ctx, "db", "", nil)
	requireStatus(t, err, http.StatusNotFound, CodeSecretNotFound)

	// Each Set adds a version that becomes the latest.
	var ids []string
	for i := range 3 {
		resp, err := c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{
			Value: to.Ptr(fmt.Sprint("v", i)), Tags: map[string]*string{"n": to.Ptr(fmt.Sprint(i))},
		}, nil)
		require.NoError(t, err)
		require.Len(t, resp.ID.Version(), 32)
		require.True(t, *resp.Attributes.Enabled)
		ids = append(ids, resp.ID.Version())
	}
	latest, err := c.GetSecret(ctx, "db", "", nil)
	require.NoError(t, err)
	require.Equal(t, "v2", *latest.Value)
	require.Equal(t, ids[2], latest.ID.Version())
	first, err := c.GetSecret(ctx, "db", ids[0], nil)
	require.NoError(t, err)
	require.Equal(t, "v0", *first.Value)
	require.Equal(t, "0", *first.Tags["n"], "tags belong to each version")

	// A disabled latest version is refused, not skipped.
	_, err = c.UpdateSecretProperties(ctx, "db", ids[2], azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
	}, nil)
	require.NoError(t, err)
	_, err = c.GetSecret(ctx, "db", "", nil)
	requireStatus(t, err, http.StatusForbidden, CodeSecretDisabled)
	_, err = c.GetSecret(ctx, "db", ids[2], nil)
	requireStatus(t, err, http.StatusForbidden, CodeSecretDisabled)

	// Update applies to a disabled version, leaves unnamed fields alone.
	upd, err := c.UpdateSecretProperties(ctx, "db", ids[2], azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)},
	}, nil)
	require.NoError(t, err)
	require.Nil(t, upd.Value, "an update returns no value")
	require.Equal(t, "2", *upd.Tags["n"])

	// A version disabled by its creator.
	_, err = c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr("v3"), SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil)
	require.NoError(t, err)
	_, err = c.GetSecret(ctx, "db", "", nil)
	requireStatus(t, err, http.StatusForbidden, CodeSecretDisabled)

	// Limits: names, tags.
	_, err = c.SetSecret(ctx, "bad_name", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	requireStatus(t, err, http.StatusBadRequest, CodeBadParameter)
	many := map[string]*string{}
	for i := range 16 {
		many[fmt.Sprint("t", i)] = to.Ptr("x")
	}
	_, err = c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr("x"), Tags: many}, nil)
	requireStatus(t, err, http.StatusBadRequest, CodeBadParameter)
}

// TestListVersions: every version, disabled ones too, no values, in pages
// of at most 25.
func TestListVersions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	v := New()
	c := v.Client(t)
	for i := range 30 {
		_, err := c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr(fmt.Sprint("v", i)), SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(i%2 == 0)}}, nil)
		require.NoError(t, err)
	}
	pager := c.NewListSecretPropertiesVersionsPager("db", nil)
	pages, enabled, seen := 0, 0, map[string]bool{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Value), 25)
		pages++
		for _, p := range page.Value {
			seen[p.ID.Version()] = true
			if *p.Attributes.Enabled {
				enabled++
			}
		}
	}
	require.Equal(t, 2, pages)
	require.Len(t, seen, 30)
	require.Equal(t, 15, enabled)
	require.ElementsMatch(t, v.Versions("db"), keys(seen))

	empty := c.NewListSecretPropertiesVersionsPager("nothing", nil)
	page, err := empty.NextPage(ctx)
	require.NoError(t, err)
	require.Empty(t, page.Value)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
