package store

import (
	"context"
	"errors"
	"testing"

	"relayfix/manifest"
	"relayfix/verifier"
)

// TestReapplyAfterRollback proves that a hotfix rolled back, by its component or by its id, may be
// applied again, and is then installed once more as a whole.
func TestReapplyAfterRollback(t *testing.T) {
	for _, target := range []string{"msgtrack", "KB910618"} {
		t.Run(target, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := context.Background()
			mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
			mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
			if _, err := s.Rollback(ctx, target); err != nil {
				t.Fatalf("rollback %s: %v", target, err)
			}
			if _, ok := checkConsistent(t, s.Root).Package("KB910618"); ok {
				t.Fatalf("KB910618 still recorded after rollback %s took back its only file", target)
			}
			mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
			if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7651.45" {
				t.Fatalf("after applying KB910618 again msgtrack is %s", v)
			}
			if _, ok := checkConsistent(t, s.Root).Package("KB910618"); !ok {
				t.Fatal("KB910618 not recorded after applying it again")
			}
			_, _, err := s.Apply(ctx, opener(t, kb(t, "KB910618", "6.5.7651.45")), false)
			var pe *verifier.PrerequisiteError
			if !errors.As(err, &pe) || pe.Unmet != verifier.UnmetInstalled {
				t.Fatalf("third apply: %v, want already installed", err)
			}
		})
	}
}

// TestReapplyCompletesPartlyRolledBackHotfix proves that a hotfix still recorded as installed,
// but with one of its components rolled back, is not refused as already installed: applying it
// again puts the component forward again.
func TestReapplyCompletesPartlyRolledBackHotfix(t *testing.T) {
	s, fr := newStore(t)
	ctx := context.Background()
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	two := func() *manifest.Manifest {
		m := kb(t, "KB920000", "6.5.7700.1")
		m.Files = append(m.Files, row(t, "relayd", "bin/relayd", "6.5.7700.1", kbDate))
		return m
	}
	mustApply(t, s, opener(t, two()))
	if _, err := s.Rollback(ctx, "msgtrack"); err != nil {
		t.Fatalf("rollback msgtrack: %v", err)
	}
	if _, ok := checkConsistent(t, s.Root).Package("KB920000"); !ok {
		t.Fatal("KB920000 not recorded while its relayd is still installed")
	}
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("after rollback msgtrack is %s", v)
	}

	_, plan, err := s.Apply(ctx, opener(t, two()), true)
	if err != nil || !plan.Ready || plan.Prerequisites != "met" {
		t.Fatalf("dry run of KB920000 again: plan %+v, err %v", plan, err)
	}
	mustApply(t, s, opener(t, two()))
	for _, p := range []string{"bin/msgtrack", "bin/relayd"} {
		if v := installedVersion(t, s.Root, p); v != "6.5.7700.1" {
			t.Errorf("after applying KB920000 again %s is %s", p, v)
		}
	}
	if fr.running != "6.5.7700.1" {
		t.Errorf("relay runs %s", fr.running)
	}
	checkConsistent(t, s.Root)
	_, _, err = s.Apply(ctx, opener(t, two()), false)
	if err == nil || err.Error() != "KB920000 is already installed" {
		t.Fatalf("apply of the complete KB920000: %v", err)
	}

	// relayd stayed in place across the second apply: one rollback takes the whole hotfix back.
	if _, err := s.Rollback(ctx, "KB920000"); err != nil {
		t.Fatalf("rollback KB920000: %v", err)
	}
	for _, p := range []string{"bin/msgtrack", "bin/relayd"} {
		if v := installedVersion(t, s.Root, p); v != "6.5.7638.1" {
			t.Errorf("after rollback of KB920000 %s is %s", p, v)
		}
	}
	if _, ok := checkConsistent(t, s.Root).Package("KB920000"); ok {
		t.Error("KB920000 still recorded after its rollback")
	}
	mustApply(t, s, opener(t, two()))
}
