/* lm_daemon's pure parts: which jobs are parts of one migration, when a lease ran out. */
#include <criterion/criterion.h>

#include "lm_daemon.h"

Test(daemon, parts_of_one_migration)
{
    cr_assert(lm_daemon_same_migration("mig16", "mig16"));
    cr_assert_not(lm_daemon_same_migration("mig16", "mig17"));
    cr_assert_not(lm_daemon_same_migration("", ""), "two jobs without an id are two migrations");
    cr_assert_not(lm_daemon_same_migration("mig16", ""));
    cr_assert_not(lm_daemon_same_migration(NULL, "mig16"));
}

Test(daemon, leases)
{
    cr_assert_not(lm_daemon_lease_expired(1000, 0, 1000000), "no lease never runs out");
    cr_assert_not(lm_daemon_lease_expired(1000, 30000, 30999));
    cr_assert(lm_daemon_lease_expired(1000, 30000, 31000));
    cr_assert(lm_daemon_lease_expired(1000, 30000, 99000));
}
