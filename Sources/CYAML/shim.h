#ifndef BUILDSET_CYAML_SHIM_H
#define BUILDSET_CYAML_SHIM_H

#include <yaml.h>

#endif
