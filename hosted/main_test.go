package hosted

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestMain silences distribution's request lines, which go to logrus's
// standard logger; failures show in the test output instead.
func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.FatalLevel)
	os.Exit(m.Run())
}
