package config

// The raw types mirror the file format one to one. They are decoded strictly
// (unknown fields are errors) and then checked and converted into Config.
// Durations and references stay strings here so that their errors can say
// which field and line; counts are pointers so that "not given" (default)
// differs from an explicit 0 (an error).

type rawFile struct {
	Database string      `yaml:"database"`
	Stores   rawStores   `yaml:"stores"`
	Include  []string    `yaml:"include"`
	Deny     []rawDeny   `yaml:"deny"`
	Policies []rawPolicy `yaml:"policies"`
}

type rawStores struct {
	File *rawFileStore `yaml:"file"`
	AWS  *rawAWSStore  `yaml:"aws"`
	GCP  *rawGCPStore  `yaml:"gcp"`
}

type rawFileStore struct {
	Dir     string `yaml:"dir"`
	KeyFile string `yaml:"key_file"`
}

type rawAWSStore struct {
	Region      string            `yaml:"region"`
	EndpointURL string            `yaml:"endpoint_url"`
	Create      bool              `yaml:"create"`
	KMSKeyID    string            `yaml:"kms_key_id"`
	Description string            `yaml:"description"`
	Tags        map[string]string `yaml:"tags"`
}

type rawGCPStore struct {
	Project        string `yaml:"project"`
	Endpoint       string `yaml:"endpoint"`
	DestroyRetired bool   `yaml:"destroy_retired"`
}

type rawDeny struct {
	Name     string `yaml:"name"`
	Cron     string `yaml:"cron"`
	Duration string `yaml:"duration"`
	Timezone string `yaml:"timezone"`
}

type rawPolicy struct {
	Name             string      `yaml:"name"`
	Strategy         string      `yaml:"strategy"`
	Store            string      `yaml:"store"`
	Secret           string      `yaml:"secret"`
	Tags             []string    `yaml:"tags"`
	Target           rawTarget   `yaml:"target"`
	Password         rawPassword `yaml:"password"`
	Schedule         string      `yaml:"schedule"`
	Timezone         string      `yaml:"timezone"`
	Window           string      `yaml:"window"`
	ExpectedDuration string      `yaml:"expected_duration"`
	GuardBefore      string      `yaml:"guard_before"`
	GuardAfter       string      `yaml:"guard_after"`
	MaxAge           string      `yaml:"max_age"`
	OnOverdue        string      `yaml:"on_overdue"`
	Missed           string      `yaml:"missed"`
	Grace            string      `yaml:"grace"`
	MaxAttempts      *int        `yaml:"max_attempts"`
	Canary           rawCanary   `yaml:"canary"`
	Deny             []rawDeny   `yaml:"deny"`
}

type rawTarget struct {
	Postgres  *rawPostgres  `yaml:"postgres"`
	HTTP      *rawHTTP      `yaml:"http"`
	Generated *rawGenerated `yaml:"generated"`
}

// rawHTTP is target.http; see targets/httpkey.Options for the meaning of
// each field. The request blocks repeat method/url/headers/body rather
// than embed them, so that "did you mean" hints list every field.
type rawHTTP struct {
	AllowInsecure     bool              `yaml:"allow_insecure"`
	Timeout           string            `yaml:"timeout"`
	MaxAttempts       *int              `yaml:"max_attempts"`
	MaxBackoff        string            `yaml:"max_backoff"`
	MaxRetryAfter     string            `yaml:"max_retry_after"`
	MaxResponseBytes  *int64            `yaml:"max_response_bytes"`
	TLS               rawTLS            `yaml:"tls"`
	Auth              rawAuth           `yaml:"auth"`
	Vars              map[string]string `yaml:"vars"`
	KeyNamePrefix     string            `yaml:"key_name_prefix"`
	IdempotencyHeader string            `yaml:"idempotency_header"`
	Issue             rawIssue          `yaml:"issue"`
	Verify            rawVerify         `yaml:"verify"`
	Revoke            rawRequest        `yaml:"revoke"`
	Enable            *rawRequest       `yaml:"enable"`
	Disable           *rawRequest       `yaml:"disable"`
	List              *rawList          `yaml:"list"`
}

type rawTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	MinVersion string `yaml:"min_version"`
}

type rawAuth struct {
	Type     string `yaml:"type"`
	Header   string `yaml:"header"`
	Prefix   string `yaml:"prefix"`
	Username string `yaml:"username"`
	Secret   string `yaml:"secret"`
}

type rawRequest struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
}

type rawIssue struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
	Key     string            `yaml:"key"`
	ID      string            `yaml:"id"`
	Expiry  string            `yaml:"expiry"`
	Fields  map[string]string `yaml:"fields"`
}

type rawVerify struct {
	Method      string            `yaml:"method"`
	URL         string            `yaml:"url"`
	Headers     map[string]string `yaml:"headers"`
	Body        string            `yaml:"body"`
	KeyIn       string            `yaml:"key_in"`
	KeyName     string            `yaml:"key_name"`
	KeyPrefix   string            `yaml:"key_prefix"`
	Status      *int              `yaml:"status"`
	JSONPointer string            `yaml:"json_pointer"`
	Expect      string            `yaml:"expect"`
}

type rawList struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
	Items   string            `yaml:"items"`
	ID      string            `yaml:"id"`
	Name    string            `yaml:"name"`
}

type rawGenerated struct {
	Field string `yaml:"field"`
}

type rawPostgres struct {
	Host              string `yaml:"host"`
	Port              *int   `yaml:"port"`
	DBName            string `yaml:"dbname"`
	SSLMode           string `yaml:"sslmode"`
	Username          string `yaml:"username"`
	AlternateUsername string `yaml:"alternate_username"`
	GroupRole         string `yaml:"group_role"`
	Admin             string `yaml:"admin"`
	CanaryQuery       string `yaml:"canary_query"`
	RetireNoLogin     bool   `yaml:"retire_nologin"`
}

type rawPassword struct {
	Length     *int   `yaml:"length"`
	Alphabet   string `yaml:"alphabet"`
	Characters string `yaml:"characters"`
}

type rawCanary struct {
	Attempts *int   `yaml:"attempts"`
	Interval string `yaml:"interval"`
}
