package e2ee

import "testing"

// FuzzClassify feeds arbitrary messages to the classifier and the decisions. Beyond not
// panicking, they must agree with each other: the outgoing armor rule only ever
// removes messages from Encrypted, and each decision accepts exactly what Classify
// says it should. The seed corpus in testdata/fuzz/FuzzClassify holds one message of
// each shape the table tests use.
func FuzzClassify(f *testing.F) {
	f.Add(fixture(f, "encrypted.eml"))
	f.Add(fixture(f, "gnupg-old-format.eml"))
	const self = "alice@chat.example"
	env := Envelope{Sender: self, EnforceOutgoing: true, Recipients: []Recipient{{Address: self, Local: true, EnforceIncoming: true}}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		in, out := Classify(msg, Incoming), Classify(msg, Outgoing)
		if in != out && (in != Encrypted || out != Cleartext) {
			t.Fatalf("incoming %v, outgoing %v", in, out)
		}

		dout, din := DecideOutgoing(msg, env), DecideIncoming(msg, env)
		for _, c := range []struct {
			dir  Direction
			d    Decision
			want Class
		}{{Outgoing, dout, out}, {Incoming, din, in}} {
			switch got := c.d.Rule; {
			case (got == AcceptEncrypted) != (c.want == Encrypted):
				t.Fatalf("%v: rule %v for a %v message", c.dir, got, c.want)
			case (got == AcceptSecureJoin) != (c.want == SecureJoinRequest):
				t.Fatalf("%v: rule %v for a %v message", c.dir, got, c.want)
			case got == RejectCleartext && (c.want != Cleartext || c.d.Reply() != reply523):
				t.Fatalf("%v: refused a %v message with %q", c.dir, c.want, c.d.Reply())
			case got != RejectCleartext && c.d.Reply() != "":
				t.Fatalf("%v: accepted with reply %q", c.dir, c.d.Reply())
			}
		}
		if ds := DecideSubmission(msg, env); ds != dout {
			t.Fatalf("submission %+v, outgoing %+v", ds, dout)
		}
	})
}
