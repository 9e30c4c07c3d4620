from lightformer.cli import main
import sys

sys.exit(main())
