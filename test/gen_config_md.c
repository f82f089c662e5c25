/* Print the [pgbouncer] settings table of doc/config.md from the key table in
 * src/config.c (run by `make config-doc`; unit_config checks the result). */
#include <stdio.h>

#include "config.h"

int main(void)
{
	size_t i;

	printf("| key | default | RELOAD | implemented | meaning |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	for (i = 0; i < cfg_key_count(); i++) {
		const char *name, *def;
		bool reload;

		if (!cfg_key_info(i, &name, &def, &reload))
			continue;
		printf("| `%s` | %s%s%s | %s | %s | %s |\n", name, def && def[0] ? "`" : "",
		       def && def[0] ? def : "(empty)", def && def[0] ? "`" : "",
		       reload ? "yes" : "restart", cfg_key_implemented(i) ? "yes" : "**no**, warns",
		       cfg_key_description(i));
	}
	return 0;
}
