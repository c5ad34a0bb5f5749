"""The terminal chat app behind `qwen35cpu chat`: where it writes (screen), how it reads
(input: prompt_toolkit line editing and history, or plain lines), Ctrl-C during an answer
(interrupt), the conversation with /save and /load (conversation), and the loop with its slash
commands (app). The command in commands/chat.py only parses arguments and starts it.
"""
