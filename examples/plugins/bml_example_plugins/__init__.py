"""Example plug-ins of BML Studio (docs/PLUGINS.md). The modules `encoder`, `fusion` and
`dataset` hold torch-free specs (imported by the dashboard, `bml plugins` and the config);
`impl` holds the torch code, imported only when a run is built."""
