"""rvclora.library: the user's voice library and home folder.

The home folder (`home`), shared model assets and their pinned downloads (`assets`,
`asset_pins`), the content encoders a voice names (`embedders`), the voice library
(`voice_library`), importing voices from files, folders, bundles and links
(`voice_import`, `voice_bundle`, `voice_links`, `index_pairing`) and the `voices`
subcommand (`voices_cli`). Models and file formats stay in rvclora.synth.
"""
